func _probe() { _ = PackageResources.placeholder_cu }
