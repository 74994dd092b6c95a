"""genlab.metrics"""
