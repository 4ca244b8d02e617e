"""Apps: the `motion-prior` verbs that sim_envs adds (data generate, demo, train all, plan, bench)."""
