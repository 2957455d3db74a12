print("tokenfeedd: not yet")
