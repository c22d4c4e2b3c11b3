"""Sans-I/O core: state machines and routing.  No sockets, no clock, no awaits."""
