"""spotpack extender service."""
