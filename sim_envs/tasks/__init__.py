"""Tasks: the Gymnasium envs, the wrapper that imagines futures of candidate actions, and the
poke functions that turn actions into pokes."""
