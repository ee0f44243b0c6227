"""moldiff.models"""
