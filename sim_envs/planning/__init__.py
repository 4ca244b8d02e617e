"""Planning: sampling-based planners with their goal cost, and their evaluation (`plan eval`,
`plan check`)."""
