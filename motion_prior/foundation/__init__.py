"""Foundation: what every other layer shares: errors, configs, checkpoint files, camera and
coordinate conventions, the poke convention, metrics, the vocabulary of clip descriptions, drawing."""
