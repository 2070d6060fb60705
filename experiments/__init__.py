"""The named experiments, Hydra's `experiment` group, shipped as the package fmnist.conf.experiment."""
