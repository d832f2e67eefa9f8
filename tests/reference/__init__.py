"""Independent reference models of the contract's rules, for checking the production code."""
