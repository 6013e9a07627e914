"""The composition root and command line: wires edge, cloud and simulators together."""
