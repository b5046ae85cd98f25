"""One binding through the state machine: the machine, its steps and their driver."""
