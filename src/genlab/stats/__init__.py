"""genlab.stats"""
