"""parley.relay"""
