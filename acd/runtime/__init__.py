"""The engine: wires the adapters to the core, carries out its actions, owns
every task and timer; the run loop of ``acd serve``."""
