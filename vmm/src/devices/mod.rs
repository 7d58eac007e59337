//! Guest devices behind the PAPR PCI host bridge (work in progress: the disks issue).
