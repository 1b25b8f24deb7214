"""Tables, sessions, migrations and the query functions every process shares."""
