"""The web console (server-rendered: Starlette, Jinja2, one stylesheet, no JavaScript).

`app.create_app(store_url, policy_file, data_dir)` builds it; `cli.register` adds
`poortwachter console`. See docs/console.md for the pages, the roles and the security model.
"""
