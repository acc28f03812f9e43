"""kwsgen: compile int8 TFLite keyword-spotting models into plain C for Cortex-M.

Pipeline, one module per stage:
    importer -> ir -> legalize (checks, folding) -> ops (reference semantics)
    -> planner (static arena) -> codegen (Jinja2) -> build / verify
"""

__version__ = "0.1.0"
