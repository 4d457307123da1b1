package gateway

// discoveryRoutes lists the discovery routes.
func (s *Server) discoveryRoutes() []route { return nil }
