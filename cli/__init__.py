"""The command-line tools: prn-prep, prn-train, prn-eval, prn-predict, prn-demo."""
