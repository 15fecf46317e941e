"""One module per part of the suite; see dccn_deploy.PARTS for the order."""
