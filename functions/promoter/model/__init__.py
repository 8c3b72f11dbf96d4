"""Pure values and decisions: configuration, patterns, templates, events, plans, manifests, outcomes.

Nothing here performs I/O; everything here can be read without AWS in mind.
"""
