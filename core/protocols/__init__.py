"""Sinch Voice API v2: wire types, verification, decoding and rendering."""
