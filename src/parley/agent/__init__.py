"""parley.agent"""
