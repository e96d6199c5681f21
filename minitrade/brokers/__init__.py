"""Broker adapters: the built-in manual broker and Interactive Brokers (Client Portal API)."""
