"""What the tests share: naive float64 references of the losses, the gloo harness, the command
line runner, paths, the offline W&B reader. Test modules import from here, never from each other."""
