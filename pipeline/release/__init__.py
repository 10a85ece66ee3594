"""Release builds: a plan of models x quantizations x devices, built once as jobs on this machine or a
Ray cluster, published with a verifiable index (see ARCHITECTURE.md, "Release builds")."""
