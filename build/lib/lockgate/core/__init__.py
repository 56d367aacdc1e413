"""The request pipeline and what it is made of: errors, types, routing, tasks."""
