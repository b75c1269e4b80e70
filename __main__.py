from dr.pulumi_program import run; run()  # noqa: E702 - the program lives in dr/pulumi_program.py
