"""Quality review: scoring forms, the week's stratified sample of calls to
review, scores and their report (docs/quality.md).

Sans-I/O: the store is :mod:`acd.adapters.qa_store`, the commands ``acd qa``.
"""
