print("sta")
