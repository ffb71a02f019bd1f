"""Sign-in with the school account: a real OpenID provider on loopback (oidc-provider, run by Node)
stands in for Microsoft Entra ID."""
