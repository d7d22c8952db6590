//! virtio-blk: a disk backed by a host file, with an io_uring engine.
