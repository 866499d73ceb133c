"""netc's Hydra sweeper plugin (`hydra/sweeper=netc`): Hydra's basic sweeper plus a static
check of every variant before anything is launched. See `netc.sweep`."""
