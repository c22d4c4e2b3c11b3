"""Adapters: the world on the other side of the core (FastAGI server, AMI
client, the database, SMS transports), each translating its errors at the
boundary."""
