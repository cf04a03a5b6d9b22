"""The desk: a web console where the social-media team reviews, edits, approves and follows posts.

``socialbot.desk.users`` (accounts, roles, sign-in throttling) is light and used by the CLI;
``socialbot.desk.app`` (Starlette and Jinja2) is imported only when the desk is served.
"""
