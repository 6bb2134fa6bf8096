"""Turning files into sources: conversations and, later, documents and exports."""
