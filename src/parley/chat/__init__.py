"""parley.chat"""
