"""The BRAC dataset protocol (Wu et al. 2019, section 5 and appendix): behavior policies trained online
by SAC, then datasets collected from them with different amounts of noise.

- ``sac``: the online SAC trainer of the behavior policies (not an offline algorithm);
- ``behavior``: the shipped behavior policies (package data), their files and cards, and
  ``python -m brackit.protocol.behavior train``;
- ``collect``: stepping many environments with one batched policy call, in segments;
- ``build``: the mixes and ``build(task, mix, size, seed)``, the dataset of ``brackit data build``;
- ``resolve``: ``--data PATH|TASK-MIX|MINARI-ID``, TASK-MIX datasets built once and cached;
- ``cli``: the ``brackit data build`` command.

It imports ``brackit.algos``-level modules and ``brackit.data``, never the other way round: ``brackit.data``
is a leaf (the container, validation, formats, info and convert).
"""
