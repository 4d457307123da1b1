package gateway

// assetRoutes lists the assets routes.
func (s *Server) assetRoutes() []route { return nil }
