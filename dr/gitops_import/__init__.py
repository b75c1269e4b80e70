"""`dr import flux|argo PATH`: a starting recovery graph from a GitOps repository.

infer.py turns the repository's objects into a draft (pure), write.py renders it with its review
comments (pure), repository.py reads the files (the edge).
"""
