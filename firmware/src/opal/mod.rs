//! OPAL calls and the MPIPL engine (powernv fadump). Owned by the OPAL worker.
