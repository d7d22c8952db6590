//! ACPI: the tables the VMM generates (acpi_tables crate) and the PM registers behind them.
