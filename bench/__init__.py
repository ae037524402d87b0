"""The project's benchmark (SPEC 5 "Speed"): the product against its targets and two baselines."""
