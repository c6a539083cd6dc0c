"""parley.crypto"""
