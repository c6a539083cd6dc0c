"""parley.api"""
