"""genlab.nn"""
