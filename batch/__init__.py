"""Batch scoring for analysts: the `stance` CLI (batch/cli.py) and ``score_frame`` (batch/frame.py).

Not part of the Bento (bentofile.yaml leaves this folder out): the HTTP service is serving/.
"""
