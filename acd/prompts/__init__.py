"""The prompt pack: the text of every prompt per language
(``ivr_flows/prompts.yaml``, :mod:`acd.prompts.pack`), what a flow and the
engine may play (:mod:`acd.prompts.collect`), speech from text with
espeak-ng and sox (:mod:`acd.prompts.render`), synthesized files in an
Asterisk sounds folder beside recorded ones (:mod:`acd.prompts.install`) and
the check ``acd serve`` makes at start (:mod:`acd.prompts.startup`).
See docs/prompts.md.
"""
