"""The config tree, shipped as the package fmnist.conf: Hydra's pkg://fmnist.conf needs this file to find it."""
