"""Kernel backends besides kwsgen's portable C: CMSIS-NN."""
