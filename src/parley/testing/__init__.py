"""parley.testing"""
