package gateway

// credentialRoutes lists the credentials routes.
func (s *Server) credentialRoutes() []route { return nil }
