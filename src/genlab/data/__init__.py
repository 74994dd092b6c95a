"""genlab.data"""
