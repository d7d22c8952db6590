//! The in-VMM DHCP server for the instance's private address.
